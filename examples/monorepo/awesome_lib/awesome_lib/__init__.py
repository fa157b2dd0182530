"""A library the services share."""


def greet(name):
    return f"hello, {name}"
