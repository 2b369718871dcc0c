"""The HTTP face: the Starlette app, its middleware, the routes, bodies, answers and OpenAPI."""
