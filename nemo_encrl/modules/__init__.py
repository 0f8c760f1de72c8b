from nemo_encrl.modules.teacher_wrapper import TeacherWrapper

__all__ = ["TeacherWrapper"]
