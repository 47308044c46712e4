# The soak of t/004_soak.pl, with two workers for the database
# (shopping_upload.workers_per_database = 2): the same writers, faults and
# kill -9, and the same invariants (each order's last accepted body is its
# content now, no shipping information before its order, every upload
# verified); the duplicates are reported as there.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;

# loaded here, at compile time: their INIT blocks (PostgreSQL::Test::Cluster
# picks its ports in one) would not run in a file loaded by "do"
use HTTP::Tiny;
use POSIX qw(WNOHANG);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use SuStub;

BEGIN { $ENV{SOAK_WORKERS} = 2; }
my $soak = "$FindBin::RealBin/004_soak.pl";
my $ok = do $soak;
die "$soak: $@" if $@;
