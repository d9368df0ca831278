"""Views of the research app."""
