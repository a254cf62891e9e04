"""Server maintenance (server admins): the calibrated-light cache, expiry, retention, and
the health of the whole system."""
