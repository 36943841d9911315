"""Makes test/python importable as test.python for `python3 -m unittest discover -s test/python -t .`
(without it, the standard library's own `test` package would be found instead)."""
