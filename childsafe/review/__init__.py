"""The review workbench: grading what no list knew (issue 20; docs/review.md).

So far: the grouping of a scan's unmatched pictures and videos into
near-duplicates (``groups.py``), so that an investigator grades each group
once; the grades, stored with the case (``grades.py``); and graded items
flowing on into the case's reports and a bank (``export.py``); and previews
with the least exposure (``previews.py``).
"""

from childsafe.review.export import GradedExport, export_graded, write_graded_reports
from childsafe.review.grades import GRADES_FILE, NOT_INDECENT, Grade, GradeBook, case_scheme, grade_keys
from childsafe.review.groups import (
    REVIEW_GROUP_DISTANCE,
    ReviewGroup,
    ReviewItem,
    group_items,
    load_review_items,
)
from childsafe.review.previews import PREVIEW_MODES, PREVIEW_SIDE, render_preview

__all__ = [
    "GRADES_FILE",
    "NOT_INDECENT",
    "PREVIEW_MODES",
    "PREVIEW_SIDE",
    "REVIEW_GROUP_DISTANCE",
    "Grade",
    "GradeBook",
    "GradedExport",
    "ReviewGroup",
    "ReviewItem",
    "case_scheme",
    "export_graded",
    "grade_keys",
    "group_items",
    "load_review_items",
    "render_preview",
    "write_graded_reports",
]
