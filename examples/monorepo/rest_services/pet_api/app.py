"""The pet API service."""
from awesome_lib import greet

print(greet("pets"))
