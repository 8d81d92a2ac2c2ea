"""Limits of the closed world, in one place (overridable from the CLI via options)."""

MAX_SOURCE_LENGTH = 1_000_000  # characters in one program
MAX_LOOP_ITERATIONS = 100_000  # iterations of one `for`
MAX_CALL_DEPTH = 200  # nested user-function calls
MAX_IMAGE_PIXELS = 400_000_000  # pixels in one image made by an expression
TILE_ELEMENTS = 1 << 16  # elements per tile in PixelMath evaluation (fits L2 cache)
