"""imsconf.focus"""
