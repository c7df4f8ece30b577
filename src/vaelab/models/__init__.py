"""Variant implementations. Each module registers its variants with ``@register``; the registry
imports every module here on first use (see :mod:`vaelab.registry`)."""
