from setuptools import setup

setup(name="awesome_lib", version="1.0.0", packages=["awesome_lib"])
