"""evalstudy (API docstring to be completed)."""
