"""An observatory's library: its pages, each frame's metadata, components, file, preview
and calibrated light, deletion, and frames uploaded through the API."""
