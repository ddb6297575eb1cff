"""User errors raised inside Spark tasks reach the user as themselves, whatever their class."""

from __future__ import annotations

import pytest

from topotrigger.errors import UserError, carry_user_errors, user_error_in, user_errors_from_tasks


class OddInputError(UserError, ValueError):
    """A UserError subclass the driver knows nothing special about."""


@carry_user_errors
def _failing_task(rows):  # type: ignore[no-untyped-def]
    for row in rows:
        if row == 3:
            raise OddInputError(f"row {row} is odd: fix the input file")
        yield row


def test_user_error_in_a_spark_task_reaches_the_driver_whole(spark) -> None:
    with pytest.raises(OddInputError, match=r"^row 3 is odd: fix the input file$"), user_errors_from_tasks():
        spark.sparkContext.parallelize(range(6), 2).mapPartitions(_failing_task).collect()


def test_other_failures_keep_their_traceback(spark) -> None:
    def broken(rows):  # type: ignore[no-untyped-def]
        raise ZeroDivisionError("internal bug")
        yield

    with pytest.raises(Exception, match="ZeroDivisionError") as info, user_errors_from_tasks():
        spark.sparkContext.parallelize(range(2), 1).mapPartitions(broken).collect()
    assert not isinstance(info.value, UserError)


def test_foreign_text_is_not_mistaken_for_a_user_error() -> None:
    assert user_error_in(RuntimeError("topotrigger.errors.InputError: looks like one")) is None
    assert user_error_in(RuntimeError("[topotrigger-user-error:not base64:topotrigger-user-error]")) is None


def test_a_carried_error_imports_nothing_and_falls_back_to_user_error() -> None:
    import base64
    import json

    from topotrigger.errors import InputError

    def carried(kind: str) -> RuntimeError:
        payload = base64.b64encode(json.dumps({"kind": kind, "message": "bad file x.root"}).encode()).decode()
        return RuntimeError(f"Py4J... [topotrigger-user-error:{payload}:topotrigger-user-error] bad file x.root")

    assert type(user_error_in(carried("topotrigger.errors:InputError"))) is InputError
    unknown = user_error_in(carried("os:system"))  # not a UserError: never used as the class
    assert type(unknown) is UserError and str(unknown) == "bad file x.root"
    assert type(user_error_in(carried("not.imported.module:Thing"))) is UserError
