"""The pxlang language: parse, check and evaluate. Knows nothing of astronomy."""
