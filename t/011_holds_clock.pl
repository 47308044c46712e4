# Holds that a writer cannot flush, ended on purpose by requeue() and shown
# in a view; the worker's schedule under a wall clock that steps back and
# forward (a clock shim preloaded into the server: test/clock_shim.c); a
# lock on one table stops only the kinds that read it.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use SuStub;

my $dir = PostgreSQL::Test::Utils::tempdir();
my $stub = SuStub->start(dir => $dir);

# the shim, built here; the server's wall clock is moved by writing seconds
# to $clock
my $shim = "$dir/clock_shim.so";
system('cc', '-shared', '-fPIC', '-o', $shim, "$FindBin::RealBin/../test/clock_shim.c", '-ldl') == 0
  or die 'could not build the clock shim';
my $clock = "$dir/clock_offset";
PostgreSQL::Test::Utils::append_to_file($clock, "0\n");
sub set_clock
{
	my ($seconds) = @_;
	open my $fh, '>', "$clock.tmp" or die $!;
	print $fh "$seconds\n";
	close $fh;
	rename "$clock.tmp", $clock or die $!;
	usleep(100_000);		# read again within 20 ms by every process
}

my $node;
{
	local $ENV{LD_PRELOAD} = $shim;
	local $ENV{SU_CLOCK_SHIM} = $clock;
	$node = SuStub::node(conf => <<"EOC");
shopping_upload.api_base_url = '${\ $stub->url}'
shopping_upload.appid = 'wxtestappid'
shopping_upload.secret = 'testsecret'
shopping_upload.verify_delay = 0
shopping_upload.max_rate = 5
shopping_upload.retry_base_delay = '50ms'
shopping_upload.retry_max_delay = '200ms'
EOC
}

sub sql { return $node->safe_psql('postgres', $_[0]); }
my $n = 0;
sub next_no { return sprintf('HC%010d', ++$n); }
sub import_sql
{
	my ($no, $appid) = @_;
	return "shopping_upload.import_order('" . SuStub::order_json(out_trade_no => $no)
	  . "'" . (defined $appid ? ", '$appid'" : '') . ')';
}
sub state_of { return sql("SELECT state FROM shopping_upload.order_state WHERE order_id = $_[0]"); }
sub uploaded_within
{
	my ($id, $secs) = @_;
	return SuStub::poll_until($node, 'postgres',
		"SELECT state FROM shopping_upload.order_state WHERE order_id = $id", 'uploaded', $secs);
}
sub requests_with
{
	my ($text) = @_;
	return scalar grep { index($_->{body}, $text) >= 0 } @{ $stub->requests('/user-order/orders') };
}

my $first = sql('SELECT ' . import_sql(next_no()));
ok(uploaded_within($first, 60), 'the worker uploads');

# =====================================================================
# 1. A hold survives orders of made-up appids; requeue() ends it; a view
#    shows it
# =====================================================================
$stub->fault(kind => 'errcode:45009');
my $a_no = next_no();
my $first_held = sql('SELECT ' . import_sql($a_no));
ok(SuStub::poll_until($node, 'postgres', "SELECT state FROM shopping_upload.order_state WHERE order_id = $first_held", 'held', 60),
	'45009: the order is held, and its appid with it');
# a writer's orders of 80 appids nobody has credentials for
sql('SELECT ' . join(', ', map {
	my $fake = sprintf('wxFAKE%05d', $_);
	"shopping_upload.import_order('" . SuStub::order_json(out_trade_no => next_no(), appid => $fake) . "', '$fake')"
} 1 .. 80));
ok(SuStub::poll_until($node, 'postgres',
	"SELECT count(*) FROM shopping_upload.order_state s JOIN shopping_upload.orders o USING (order_id)
	  WHERE o.appid LIKE 'wxFAKE%' AND s.state = 'held' AND s.last_errcode = 41004", '80', 60),
	'orders of 80 made-up appids are held one by one, with 41004');
my $b_no = next_no();
my $second_held = sql('SELECT ' . import_sql($b_no));
ok(SuStub::poll_until($node, 'postgres',
	"SELECT state || ' ' || last_errcode FROM shopping_upload.order_state WHERE order_id = $second_held", 'held 45009', 60),
	'a new order of the held appid is held without being sent: the made-up appids pushed nothing out');
is(requests_with("\"$b_no\""), 0, 'WeChat never got it');
is(sql("SELECT orders || ' ' || (held_until > now() + interval '1 minute') || ' ' || (reason IS NOT NULL)
		FROM shopping_upload.holds WHERE appid = 'wxtestappid' AND errcode = 45009 AND kind = 'order'"),
	'2 true true', 'the holds view shows the appid, its errcode, its orders, until when and why');
is(sql("SELECT count(*) FROM shopping_upload.holds WHERE appid LIKE 'wxFAKE%' AND errcode = 41004"),
	'80', 'and the made-up appids each with its reason');
is(sql("SELECT shopping_upload.requeue(NULL, '{held}') >= 2"), 't', 'requeue() of the held orders');
ok(uploaded_within($first_held, 30) && uploaded_within($second_held, 30), 'ends the hold on purpose: both orders are uploaded');
sql("DELETE FROM shopping_upload.orders WHERE appid LIKE 'wxFAKE%'");

# =====================================================================
# 2. The wall clock steps back: claims go on (known defect 1)
# =====================================================================
# an order queued just before the step (its state row written in a
# transaction that commits after it): its due time is then in the future
my $before = sql('SET shopping_upload.auto_upload = off; SELECT ' . import_sql(next_no()));
my $locker = $node->background_psql('postgres', on_error_stop => 0);
$locker->query_safe("BEGIN; INSERT INTO shopping_upload.order_state (order_id) VALUES ($before)");
set_clock(-90);
$locker->query_safe('COMMIT');
$locker->quit;
my $t0 = time;
# a new order wakes the worker, which sees the step
my $after = sql('SELECT ' . import_sql(next_no()));
ok(uploaded_within($before, 60), 'an order queued before a 90 s step back is uploaded');
my $took = time - $t0;
ok($took < 30, 'without waiting for the wall clock to catch up');
diag sprintf('queued before the step: uploaded %.2f s after it', $took);
ok(uploaded_within($after, 60), 'an order queued after the step is uploaded');
$took = time - $t0;
ok($took < 30, 'at once, the rate limit and the claim interval unmoved by the step');
diag sprintf('queued after the step back: uploaded %.2f s after it', $took);
like(slurp_file($node->logfile), qr/the wall clock went back (?:8|9)\d\.\d s/, 'the worker says what it saw');

# =====================================================================
# 3. The wall clock steps forward: no flood; max_rate holds
# =====================================================================
set_clock(3600);
$stub->reset;
my @ids = split /\n/, sql('SELECT ' . join(' UNION ALL SELECT ', map { import_sql(next_no()) } 1 .. 15));
ok(SuStub::poll_until($node, 'postgres',
	"SELECT count(*) FROM shopping_upload.order_state WHERE order_id IN (" . join(',', @ids) . ") AND state = 'uploaded'",
	'15', 60), 'after an hour forward, 15 orders are uploaded');
my @times = sort { $a <=> $b } map { $_->{time} } @{ $stub->requests('/user-order/orders') };
my $spread = @times ? $times[-1] - $times[0] : 0;
diag 'request times: ' . join(' ', map { sprintf('%.2f', $_ - $times[0]) } @times);
ok(@times >= 15 && $spread >= 1.5, sprintf('at max_rate 5/s, not in a burst (15 over %.2f s)', $spread));
set_clock(0);

# =====================================================================
# 4. A lock on one table stops only the kinds that read it, and stats
#    says which waits and on what (N16)
# =====================================================================
my $lock = $node->background_psql('postgres', on_error_stop => 0);
$lock->query_safe('BEGIN; LOCK TABLE shopping_upload.shipment_items IN ACCESS EXCLUSIVE MODE');
my $o_no = next_no();
my $o = sql('SELECT ' . import_sql($o_no));
# its shipping information, written row by row (import_shipping() would
# replace the items of a shipment, and wait for the lock itself)
sql("INSERT INTO shopping_upload.shippings (order_id, delivery_mode) VALUES ($o, 1);
	INSERT INTO shopping_upload.shipments (order_id, shipment_no, tracking_no, express_company)
	VALUES ($o, 0, 'SF$o_no', 'SF')");
ok(uploaded_within($o, 30), 'with shipment_items locked by an idle transaction, orders are still uploaded');
ok(SuStub::poll_until($node, 'postgres',
	"SELECT claims_waiting LIKE 'shipping waits for a lock on shopping_upload.shipment_items since %' FROM shopping_upload.stats",
	't', 30), 'stats says the shipping information waits for that lock');
# the shipping information's kind waits for that table; so may the order
# shipping management service's upload, which reads it too (when the worker
# looked at that kind meanwhile); no other kind, no other table
is(sql("SELECT bool_or(kind = 'shipping') AND bool_and(kind IN ('shipping', 'trade_shipping'))
	AND bool_and(waiting_for = 'a lock on shopping_upload.shipment_items') FROM shopping_upload.claim_waits()"),
	't', 'claim_waits() names the kind and the table');
is(sql("SELECT shipping_state FROM shopping_upload.order_status WHERE order_id = $o"), 'pending',
	'the shipping information waits');
$lock->query_safe('COMMIT');
$lock->quit;
ok(SuStub::poll_until($node, 'postgres',
	"SELECT shipping_state FROM shopping_upload.order_status WHERE order_id = $o", 'uploaded', 30),
	'once the lock is gone, the shipping information is uploaded');
ok(SuStub::poll_until($node, 'postgres', 'SELECT claims_waiting IS NULL FROM shopping_upload.stats', 't', 30),
	'and stats says nothing waits');

$node->stop;
done_testing();
