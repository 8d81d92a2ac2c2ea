"""The numpy-backed image store and image files. The only input-adapter layer."""
