"""Developer and CI scripts: compiling the lock files and checking a venv against them."""
