"""utils stage."""
