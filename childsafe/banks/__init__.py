"""Banks: named hash lists with categories and provenance, their file formats
(one module each in ``formats/``), and imports that are atomic and idempotent."""

from childsafe.banks.catalogue import (
    BANK_KINDS,
    BankAction,
    BankInfo,
    VideoRule,
    bank_info,
    create_bank,
    delete_bank,
    entry_key,
    list_banks,
    set_webhook,
)
from childsafe.banks.entries import AddedEntries, AddFilesResult, NewEntry, add_entries, add_files_to_bank, remove_entry
from childsafe.banks.exporting import export_bank, export_bank_file
from childsafe.banks.importing import ImportResult, import_bank_file, import_bank_stream
from childsafe.banks.schemes import SCHEMES, VICS_PROFILES, most_severe, severity_rank

__all__ = [
    "BANK_KINDS",
    "BankAction",
    "AddFilesResult",
    "AddedEntries",
    "SCHEMES",
    "VICS_PROFILES",
    "BankInfo",
    "VideoRule",
    "ImportResult",
    "NewEntry",
    "add_entries",
    "add_files_to_bank",
    "bank_info",
    "create_bank",
    "delete_bank",
    "entry_key",
    "export_bank",
    "export_bank_file",
    "set_webhook",
    "import_bank_file",
    "import_bank_stream",
    "list_banks",
    "most_severe",
    "remove_entry",
    "severity_rank",
]
