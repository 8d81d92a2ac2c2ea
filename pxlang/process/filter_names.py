"""Names of PixelMath's structuring elements, kernels and blend operators (no heavy imports:
the built-in registry reads them at start-up)."""

STRUCTURES = ("square", "circular", "orthogonal", "diagonal", "star", "threeway")
KERNELS = ("flat", "gauss")
BLEND_OPS = (
    "mov",
    "add",
    "sub",
    "mul",
    "div",
    "pow",
    "dif",
    "min",
    "max",
    "atan2",
    "color_burn",
    "linear_burn",
    "screen",
    "color_dodge",
    "overlay",
    "soft_light",
    "hard_light",
    "vivid_light",
    "linear_light",
    "pin_light",
    "exclusion",
)
