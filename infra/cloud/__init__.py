"""Cloud tenancies: one `DepartmentTenancy` per department that lands on this stack."""

from .tenancy import DepartmentTenancy, DepartmentTenancyArgs, Roles

__all__ = ["DepartmentTenancy", "DepartmentTenancyArgs", "Roles"]
