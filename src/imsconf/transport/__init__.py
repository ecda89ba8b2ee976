"""imsconf.transport"""
