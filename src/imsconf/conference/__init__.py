"""imsconf.conference"""
