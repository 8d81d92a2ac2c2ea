"""The science: plain numpy/scipy functions on arrays, usable without the language."""
