"""The function runtime: operation declarations, the shared middleware, OpenAPI, serving.

Framework imports (Starlette, functions-framework) stay in this package and in
``functions/``; use cases under ``medflow/<context>/`` never see them.
"""
