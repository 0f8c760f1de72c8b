"""Teacher-output cache: the frozen teacher runs once per utterance, stage 1 reads its outputs back."""

from nemo_encrl.cache.layout import CacheLayout, TeacherCacheError, needed_layout, teacher_digest
from nemo_encrl.cache.reader import TeacherCache

__all__ = ["CacheLayout", "TeacherCache", "TeacherCacheError", "needed_layout", "teacher_digest"]
