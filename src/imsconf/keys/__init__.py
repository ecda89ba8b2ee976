"""imsconf.keys"""
