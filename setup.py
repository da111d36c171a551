"""The optional compiled reader of eth_getLogs replies (auditor/chain/_logwire.c).

Everything else about the package is in pyproject.toml. The extension is optional: where no C compiler or Python
headers are found, the install goes on without it, and `auditor.chain.rpc` reads log replies in Python (the same
values, checked the same way: tests/test_logwire.py holds the two paths to each other).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("auditor.chain._logwire", ["auditor/chain/_logwire.c"], optional=True,
                             extra_compile_args=["-O2"])])
