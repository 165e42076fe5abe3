"""One simulation and one API module per gateway."""
