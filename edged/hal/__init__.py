"""Camera backends behind one interface: recorded files, picamera2 and V4L2 (hardware imports stay lazy)."""
