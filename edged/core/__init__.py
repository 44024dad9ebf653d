"""What every part of the device uses: typed messages, class names, ids, box geometry, keys, bounded logs."""
