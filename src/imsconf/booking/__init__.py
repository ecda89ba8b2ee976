"""imsconf.booking"""
