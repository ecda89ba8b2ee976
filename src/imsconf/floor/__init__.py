"""imsconf.floor"""
