"""Will a model fit this machine: parameter and memory model, hardware, preflight."""
