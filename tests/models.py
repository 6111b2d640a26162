"""Mapped classes for the core tests, written so SQLAlchemy 1.4, 2.0 and 2.1 all accept them."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import declarative_base, relationship

Base: Any = declarative_base()

post_tags = sa.Table(
    "post_tags",
    Base.metadata,
    sa.Column("post_id", sa.ForeignKey("post.id"), primary_key=True),
    sa.Column("tag_id", sa.ForeignKey("tag.id"), primary_key=True),
)


class Device(Base):
    __tablename__ = "device"
    id = sa.Column(sa.Integer, primary_key=True)
    name = sa.Column(sa.String(50))


class Doc(Base):
    __tablename__ = "doc"
    id = sa.Column(sa.Integer, primary_key=True)
    title = sa.Column(sa.String(50))
    version_id = sa.Column(sa.Integer, nullable=False)
    __mapper_args__ = {"version_id_col": version_id}  # noqa: RUF012


class Flight(Base):
    """Composite primary key."""

    __tablename__ = "flight"
    carrier = sa.Column(sa.String(8), primary_key=True)
    number = sa.Column(sa.Integer, primary_key=True)
    status = sa.Column(sa.String(20))


class Token(Base):
    """UUID primary key."""

    __tablename__ = "token"
    id = sa.Column(sa.Uuid if hasattr(sa, "Uuid") else sa.String(36), primary_key=True)
    label = sa.Column(sa.String(20))

    @staticmethod
    def new_id() -> Any:
        value = uuid.UUID("12345678-1234-5678-1234-567812345678")
        return value if hasattr(sa, "Uuid") else str(value)


class Post(Base):
    __tablename__ = "post"
    id = sa.Column(sa.Integer, primary_key=True)
    tags = relationship("Tag", secondary=post_tags)


class Tag(Base):
    __tablename__ = "tag"
    id = sa.Column(sa.Integer, primary_key=True)
    name = sa.Column(sa.String(20))
