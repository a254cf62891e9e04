"""Masters made on request: a group stacked now, or a master FITS made elsewhere."""
