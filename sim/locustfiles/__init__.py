"""Locustfiles shipped inside the package, so an installed fleetbench can hand Locust a path.

Locust puts a locustfile's folder on ``sys.path`` while importing it; this folder holds nothing
else, so no module of ``sim`` can shadow a library (``profiles/http.py`` here would shadow
``http``).
"""
