"""imsconf.sdp"""
