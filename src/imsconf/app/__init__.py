"""imsconf.app"""
