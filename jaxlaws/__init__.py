"""jaxlaws: data-mixing laws in JAX."""
