"""imsconf.media"""
