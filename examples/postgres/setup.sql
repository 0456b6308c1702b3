-- A database to grant access to, and the people's own login roles (the `existing_role` mode maps
-- alice@example.com to the role alice). Run once as the PostgreSQL admin:
--   psql -h 127.0.0.1 -U postgres -f examples/postgres/setup.sql
CREATE DATABASE shop;
\connect shop
CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL);
INSERT INTO orders VALUES (1, 'coffee'), (2, 'tea');
CREATE ROLE alice LOGIN PASSWORD 'alice-pw';
CREATE ROLE bob LOGIN PASSWORD 'bob-pw';
