"""Cloud tenancies: one `DepartmentTenancy` per department that lands on this stack."""

from .tenancy import DepartmentTenancy, Roles

__all__ = ["DepartmentTenancy", "Roles"]
