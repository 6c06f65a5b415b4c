"""The review workbench: grading what no list knew (issue 20; docs/review.md).

So far only the grouping of a scan's unmatched pictures and videos into
near-duplicates (``groups.py``), so that an investigator grades each group once.
"""

from childsafe.review.groups import (
    REVIEW_GROUP_DISTANCE,
    ReviewGroup,
    ReviewItem,
    group_items,
    load_review_items,
)

__all__ = ["REVIEW_GROUP_DISTANCE", "ReviewGroup", "ReviewItem", "group_items", "load_review_items"]
