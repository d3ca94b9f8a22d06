"""Importers of public data sets into the data contract, one module per source.

Each ``import_<kind>(src, out, ...)`` reads one source file, checks it, writes a dataset folder
(``dataset.json`` with the row accounting in ``extra``, Parquet tables, ``config.json`` and
``import.json``) and returns the folder. Every row read is kept or dropped for a named reason;
:class:`ImportStats` refuses bookkeeping where rows go missing.
"""

from predictors.importers._common import ImportStats
from predictors.importers.hillstrom import hillstrom_catalog, import_hillstrom
from predictors.importers.online_retail import import_online_retail
from predictors.importers.taobao import derive_visits, import_taobao
from predictors.importers.transactions import TransactionsConfig, import_transactions

#: Importer per CLI kind.
IMPORTERS = {
    "hillstrom": import_hillstrom,
    "online-retail": import_online_retail,
    "taobao": import_taobao,
    "transactions": import_transactions,
}

__all__ = [
    "IMPORTERS",
    "ImportStats",
    "TransactionsConfig",
    "derive_visits",
    "hillstrom_catalog",
    "import_hillstrom",
    "import_online_retail",
    "import_taobao",
    "import_transactions",
]
