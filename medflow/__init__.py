"""MedFlow core library: configuration, errors, adapters and bounded contexts.

Nothing under this package imports a web framework; functions under ``functions/``
adapt requests and CloudEvents to the use cases here.
"""
