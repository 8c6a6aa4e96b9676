"""One-line errors: TensorFlow's internal names are dropped; disk failures name the file."""
import errno

from cyclegan_tf.errors import disk_error, one_line


def test_one_line_drops_tensorflow_internal_names() -> None:
    message = ("{{function_node __wrapped__RestoreV2_dtypes_3_device_/job:localhost/replica:0/task:0/device:CPU:0}} "
               "TensorBundle at run/ckpt-2 shard 0 (400000 bytes): Checksum does not match [[{{node RestoreV2}}]] "
               "[Op:RestoreV2]\nsecond line")
    assert one_line(message) == ("TensorBundle at run/ckpt-2 shard 0 (400000 bytes): Checksum does not match "
                                 "[Op:RestoreV2]")


def test_disk_errors_name_the_file_and_others_are_not_disk_errors() -> None:
    assert disk_error(OSError(errno.ENOSPC, "No space left on device", "out/x.png")) == \
        "out/x.png: No space left on device"
    assert disk_error(OSError(errno.ENOENT, "No such file or directory", "x")) is None
