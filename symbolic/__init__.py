"""lazysi subpackage."""
