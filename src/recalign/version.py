"""The package version, in a module of its own: what records it (manifests, the HTTP
API) imports it from here, not from the package, whose `recalign.train` reaches the
training stage."""

__version__ = "0.1.0"
