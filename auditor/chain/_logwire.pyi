# Types of the compiled reader of eth_getLogs replies (auditor/chain/_logwire.c).

from typing import Any

Columns = tuple[int | None, list[str], list[tuple[str, ...]], list[str], list[str], list[str], list[str], list[str]]

def parse_logs(body: bytes, low: int, high: int, /) -> Columns | None: ...
def words(column: list[str] | list[tuple[str, ...]], item: int, start: int, kind: int, /) -> list[Any]: ...
