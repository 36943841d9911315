# The Python unit tests (test_*.py), run by `python3 -m unittest discover -s test/python -t .`.
