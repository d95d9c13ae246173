"""The workbench: a local web app over the toy definitions, plots, sessions, jobs and results.

``app`` builds the Starlette application (routes, templates), ``security`` holds the rules every
request passes (Host, CSRF token, Origin, body size, paths inside the roots), ``definitions``
edits the definition files with version checks, ``jobs`` runs one CLI stage at a time as a child
process, ``server`` starts it with uvicorn. The app edits the same files as the CLI, through the
same typed models; it never invokes a shell.
"""
