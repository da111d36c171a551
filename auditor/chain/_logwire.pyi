# Types of the compiled reader of eth_getLogs replies (auditor/chain/_logwire.c).

Columns = tuple[int | None, list[str], list[tuple[str, ...]], list[str], list[str], list[str], list[str], list[str]]

def parse_logs(body: bytes, low: int, high: int, /) -> Columns | None: ...
