"""Runnable examples of yeastar_async (each file is a script; see its docstring).

Packaged in the wheel as ``yeastar_async.examples`` so that ``yeastar-async demo`` can run the
screening bot on an installed copy.
"""
