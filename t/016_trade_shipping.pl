# WeChat's order shipping management service: the shipping information of a
# payment whose appid is in the service (trade_apps) is sent to
# /wxa/sec/order/upload_shipping_info by the worker (trade_state, audit kind
# trade_shipping), against the stand-in's payments (/__stub/trade/...).
#
#  1. a payment WeChat finds only at its third lookup: waiting_for_payment
#     (10060001) twice, then uploaded;
#  2. a payment never found: rejected once shopping_upload.payment_wait has
#     passed, with the reason; upload_trade_shipping() by hand once it exists;
#  3. unified delivery: accepted at once, the shipping complete (finish_count 1);
#  4. split delivery in three transactions (is_all_delivered false, false,
#     true): three accepted uploads, complete at the third;
#  5. a change after completion waits in needs_reship (no request, no audit
#     row); upload_trade_shipping() by hand refuses it, pointing at reship();
#     reship() sends it as the payment's one re-ship (finish_count 2);
#  6. a change after the re-ship is refused here, 10060003, audited unsent;
#     reship() again is an error (55000);
#  7. a write that changes nothing in the body is not sent;
#  8. a new delivery_mode or logistics_type after an accepted split upload is
#     a re-ship (needs_reship), sent once reship() allows it;
#  9. appids outside the service (unknown, pinned off) queue no trade_state;
#     one WeChat says is managed does; auto_upload off queues nothing; the
#     parcel's item_desc derived from the items;
# 10. faults of the stand-in (errcode -1, HTTP 500) are retried; kill -9 of
#     the worker with a trade upload in flight: sent again after the restart,
#     accepted once at the stand-in, the row uploaded.
use strict;
use warnings;

use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use SuStub;

my $t0 = time();
my $dir = PostgreSQL::Test::Utils::tempdir();
my $stub = SuStub->start(dir => $dir);

my $node = SuStub::node(conf => <<"EOC");
shopping_upload.api_base_url = '${\ $stub->url}'
shopping_upload.appid = 'wxtestappid'
shopping_upload.secret = 'testsecret'
shopping_upload.retry_base_delay = '50ms'
shopping_upload.retry_max_delay = '200ms'
shopping_upload.timeout = '10s'
shopping_upload.lease = '30s'
shopping_upload.verify_delay = '0'
# WeChat's answer decides for an appid that is not pinned (trade_apps.managed)
shopping_upload.trade_managed = auto
restart_after_crash = on
EOC

my $PATH = '/wxa/sec/order/upload_shipping_info';
my $MCHID = '1230000109';
my $OPENID = 'oUser1';

sub sql { return $node->safe_psql('postgres', $_[0]); }
# polls $query until it returns $expected, for at most $secs seconds (30);
# tolerates a server restarting (poll_query_until would wait minutes)
sub poll
{
	my ($query, $expected, $secs) = @_;
	my $end = time() + ($secs // 30);
	while (1)
	{
		my ($rc, $out) = $node->psql('postgres', $query);
		return (1, $out) if $rc == 0 && $out eq $expected;
		return (0, $out) if time() > $end;
		usleep(100_000);
	}
}
sub wait_for
{
	my ($query, $expected, $name, $secs) = @_;
	my ($ok, $got) = poll($query, $expected, $secs);
	ok($ok, $name) or diag("got: $got");
}
sub worker_pid
{
	return sql("SELECT pid FROM pg_stat_activity WHERE backend_type = 'shopping_upload worker'");
}
sub reload
{
	my ($setting, $value) = @_;
	sql(defined $value
		? "ALTER SYSTEM SET $setting = '$value'"
		: "ALTER SYSTEM RESET $setting");
	$node->reload;
}
# the error a statement ends with, with its SQLSTATE ('' if it succeeds)
sub sql_error
{
	my ($q) = @_;
	my ($rc, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\n$q");
	return $rc == 0 ? '' : $err;
}
sub tstate
{
	my ($id, $cols) = @_;
	return sql("SELECT $cols FROM shopping_upload.trade_state WHERE order_id = $id");
}
# the errcodes of the order's trade_shipping audit rows, in order
sub taudit
{
	my ($id) = @_;
	return sql("SELECT coalesce(string_agg(errcode::text, ',' ORDER BY audit_id), '')
		FROM shopping_upload.audit WHERE order_id = $id AND kind = 'trade_shipping'");
}
# the row is done with its current version
sub settled
{
	my ($id) = @_;
	return "SELECT state || ' ' || (uploaded_version IS NOT DISTINCT FROM version)
		FROM shopping_upload.trade_state WHERE order_id = $id";
}

# the stand-in's order shipping management service
sub register
{
	my ($no, %p) = @_;
	return $stub->_control('POST', '/__stub/trade/payments',
		{ mchid => $MCHID, out_trade_no => $no, openid => $OPENID, %p });
}
sub payment
{
	my ($no) = @_;
	my ($p) = grep { $_->{out_trade_no} eq $no }
	  @{ $stub->_control('GET', '/__stub/trade/payments') };
	return $p // {};
}
# the stand-in's records of upload_shipping_info for one payment
sub requests_of
{
	my ($no) = @_;
	return [ grep { index($_->{body}, "\"$no\"") >= 0 } @{ $stub->requests($PATH) } ];
}

# an order of the merchant key ($MCHID, $no); appid NULL: shopping_upload.appid
sub new_order
{
	my ($id, $no, %o) = @_;
	my $appid = defined $o{appid} ? "'$o{appid}'" : 'NULL';
	sql("INSERT INTO shopping_upload.orders
		(order_id, appid, order_number_type, mchid, out_trade_no, openid, logistics_type)
		VALUES ($id, $appid, 1, '$MCHID', '$no', '$OPENID', 1)");
}
sub parcel_sql
{
	my ($id, $n, $tracking, %o) = @_;
	my $company = $o{company} // 'YTO';
	my $desc = exists $o{desc} ? (defined $o{desc} ? "'$o{desc}'" : 'NULL') : "'Tea*1'";
	my $receiver = defined $o{receiver} ? "'$o{receiver}'" : 'NULL';
	return "INSERT INTO shopping_upload.shipments
		(order_id, shipment_no, tracking_no, express_company, receiver_contact, item_desc)
		VALUES ($id, $n, '$tracking', '$company', $receiver, $desc);";
}
# a unified delivery of one parcel, in one transaction
sub ship_unified
{
	my ($id, $tracking, %o) = @_;
	sql("BEGIN;
		INSERT INTO shopping_upload.shippings (order_id, delivery_mode, logistics_type)
			VALUES ($id, 1, 1);
		" . parcel_sql($id, 0, $tracking, %o) . "
		COMMIT;");
}

wait_for("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'shopping_upload worker'",
	'1', 'the worker runs');
sql("INSERT INTO shopping_upload.trade_apps (appid, pinned) VALUES ('wxtestappid', true)
	  ON CONFLICT (appid) DO UPDATE SET pinned = EXCLUDED.pinned;
	INSERT INTO shopping_upload.trade_apps (appid, managed, pinned) VALUES ('wxpinnedoff', true, false);
	INSERT INTO shopping_upload.trade_apps (appid, managed) VALUES ('wxmanaged', true);");

# --- 2. a payment never found: rejected once payment_wait has passed
reload('shopping_upload.payment_wait', '3s');
wait_for("SELECT setting FROM pg_settings WHERE name = 'shopping_upload.payment_wait'", '3',
	'payment_wait is 3 s');
my $id = 10;
my $no = 'TRADE0010';
new_order($id, $no);
ship_unified($id, "YT$no");
wait_for("SELECT state || ' ' || last_errcode FROM shopping_upload.trade_state WHERE order_id = $id",
	'waiting_for_payment 10060001', 'a payment WeChat does not find: waiting_for_payment, 10060001');
is(tstate($id, 'payment_wait_since IS NOT NULL AND next_attempt_at > now()'), 't',
	'its wait is dated, and it is looked for again later');
wait_for("SELECT state FROM shopping_upload.trade_state WHERE order_id = $id", 'rejected',
	'when payment_wait has passed it is rejected');
like(tstate($id, 'last_errmsg'),
	qr/^WeChat did not find the payment within shopping_upload\.payment_wait/,
	'with the reason');
is(tstate($id, 'last_errcode'), '10060001', "and WeChat's errcode");
like(taudit($id), qr/^10060001(,10060001)+$/, 'every attempt audited as 10060001 (more than one)');
my $span = sql("SELECT extract(epoch FROM max(created_at) - min(created_at))
	FROM shopping_upload.audit WHERE order_id = $id AND kind = 'trade_shipping'");
cmp_ok($span, '>=', 2.5, "looked for during payment_wait, not given up at once (${span}s)");
cmp_ok($span, '<', 10, "nor long past it (${span}s)");
is(sql("SELECT trade_shipping_state || ' ' || trade_shipping_errcode FROM shopping_upload.order_status
	WHERE order_id = $id"), 'rejected 10060001', 'order_status shows it');
my @attempts = split /,/, taudit($id);
is(scalar @{ requests_of($no) }, scalar @attempts, 'one request per audited attempt');
reload('shopping_upload.payment_wait', undef);
wait_for("SELECT setting FROM pg_settings WHERE name = 'shopping_upload.payment_wait'", '600',
	'payment_wait back to its default');
# once the payment exists, upload_trade_shipping() sends it by hand
register($no);
my $r = sql("SELECT errcode || '|' || errmsg || '|' || http_status || '|' || (audit_id IS NOT NULL)
	FROM shopping_upload.upload_trade_shipping($id)");
is($r, '0|ok|200|true', 'upload_trade_shipping() by hand: errcode, errmsg, http_status, audit_id');
is(tstate($id, "state || ' ' || finish_count || ' ' || (payment_wait_since IS NULL)"), 'uploaded 1 true',
	'the row is uploaded, complete, its wait over');
is(sql("SELECT via || ' ' || errcode || ' ' || http_status FROM shopping_upload.audit
	WHERE order_id = $id AND kind = 'trade_shipping' ORDER BY audit_id DESC LIMIT 1"),
	'sql 0 200', 'audited as via sql');
is(payment($no)->{uploads_accepted}, 1, 'the stand-in accepted it');

# --- 1. a payment found at its third lookup (checked further down)
my ($id1, $no1) = (1, 'TRADE0001');
register($no1, found_after_lookups => 2);
new_order($id1, $no1);
ship_unified($id1, "YT$no1");
wait_for("SELECT state || ' ' || last_errcode FROM shopping_upload.trade_state WHERE order_id = $id1",
	'waiting_for_payment 10060001', 'a payment not found yet: waiting_for_payment with 10060001');
is(sql("SELECT count(*) FROM shopping_upload.order_state WHERE order_id = $id1 AND state = 'uploaded'"),
	'0', 'its order was not uploaded to /user-order (the trade kind does not wait for it)');

# --- 9. which appids are in the service
new_order(7, 'TRADE0007', appid => 'wxnotinservice');
new_order(8, 'TRADE0008', appid => 'wxpinnedoff');
new_order(9, 'TRADE0009', appid => 'wxmanaged');
ship_unified(7, 'YT7');
ship_unified(8, 'YT8');
ship_unified(9, 'YT9');
is(sql("SELECT count(*) FROM shopping_upload.shipping_state WHERE order_id IN (7, 8, 9)"), '3',
	'the shipping writes of three appids were queued (shipping_state)');
is(sql("SELECT count(*) FROM shopping_upload.trade_state WHERE order_id IN (7, 8)"), '0',
	'an appid not in trade_apps, and one pinned off though managed: no trade_state row');
is(sql("SELECT count(*) FROM shopping_upload.trade_state WHERE order_id = 9"), '1',
	'an appid WeChat says is managed (pinned NULL): queued');
sql("DELETE FROM shopping_upload.orders WHERE order_id = 9");
is(sql("SELECT count(*) FROM shopping_upload.trade_state WHERE order_id = 9"), '0',
	'deleting the order deletes its trade_state');
# auto_upload off: nothing queued; item_desc derived from the parcel's items
sql("BEGIN; SET LOCAL shopping_upload.auto_upload = off;
	INSERT INTO shopping_upload.orders (order_id, order_number_type, mchid, out_trade_no, openid, logistics_type)
		VALUES (20, 1, '$MCHID', 'TRADE0020', '$OPENID', 1);
	INSERT INTO shopping_upload.sub_orders (order_id, sub_order_no) VALUES (20, 0);
	INSERT INTO shopping_upload.items (order_id, sub_order_no, item_no, merchant_item_id, name, quantity)
		VALUES (20, 0, 0, 'sku-1', 'Tea', 2), (20, 0, 1, 'sku-2', 'Cup', 1);
	INSERT INTO shopping_upload.shippings (order_id, delivery_mode, logistics_type) VALUES (20, 1, 1);
	" . parcel_sql(20, 0, 'YT20', desc => undef) . "
	COMMIT;");
is(sql("SELECT count(*) FROM shopping_upload.trade_state WHERE order_id = 20"), '0',
	'with auto_upload off the shipping tables queue nothing');
is(sql("SELECT shopping_upload.build_trade_shipping_payload(20) -> 'shipping_list' -> 0 ->> 'item_desc'"),
	'Tea*2;Cup*1', 'an empty item_desc is derived from the items, name*quantity');
is(sql("SELECT count(*) FROM shopping_upload.validate_trade_shipping_payload(
	shopping_upload.build_trade_shipping_payload(20))"), '0', 'and that body is valid');

# --- 3. unified delivery: accepted, complete
my ($id3, $no3) = (3, 'TRADE0003');
register($no3);
new_order($id3, $no3);
ship_unified($id3, "SF$no3", company => 'SF', receiver => '189****1234');
wait_for(settled($id3), 'uploaded true', 'a unified delivery is uploaded');
is(tstate($id3, "finish_count || ' ' || reship_used || ' ' || last_errcode"), '1 false 0',
	'accepted the first time, the shipping complete (finish_count 1)');
is(taudit($id3), '0', 'one attempt audited, kind trade_shipping');
my $p = payment($no3);
is($p->{uploads_accepted}, 1, 'the stand-in accepted one upload');
is($p->{order}{shipping}{finish_shipping_count}, 1, "its finish_shipping_count is 1");
my $req = requests_of($no3);
is(scalar @$req, 1, 'one request');
my $body = SuStub->decode($req->[0]{body});
is_deeply(
	[ @{$body}{qw(logistics_type delivery_mode)}, $body->{payer}{openid},
	  $body->{order_key}{out_trade_no}, $body->{shipping_list}[0]{tracking_no},
	  $body->{shipping_list}[0]{item_desc}, $body->{shipping_list}[0]{contact}{receiver_contact} ],
	[ 1, 1, $OPENID, $no3, "SF$no3", 'Tea*1', '189****1234' ],
	'the body: logistics_type, delivery_mode, payer, order_key, the parcel');
is(tstate($id3, 'uploaded_body::text'),
	sql("SELECT (shopping_upload.build_trade_shipping_payload($id3) - 'upload_time')::text"),
	'uploaded_body is the body sent, without upload_time');

# --- 7. a write that changes nothing is not sent
sql("UPDATE shopping_upload.shippings SET updated_at = now() WHERE order_id = $id3");
is(tstate($id3, 'version'), '2', 'a touch queues a new version');
wait_for(settled($id3), 'uploaded true', 'a touch that changes nothing: uploaded again');
is(tstate($id3, 'last_errmsg'), 'unchanged since its accepted upload: not sent', 'not sent, saying so');
is(tstate($id3, 'finish_count'), '1', 'not taken for a re-ship');
is(taudit($id3), '0', 'no audit row');
is(scalar @{ requests_of($no3) }, 1, 'no request');

# --- 5. a change after completion waits for reship()
sql("UPDATE shopping_upload.shipments SET tracking_no = 'SFB$no3' WHERE order_id = $id3");
wait_for("SELECT state FROM shopping_upload.trade_state WHERE order_id = $id3", 'needs_reship',
	'a change after the complete shipping was accepted: needs_reship');
like(tstate($id3, 'last_errmsg'), qr/one re-ship.*reship\(order_id\)/, 'last_errmsg explains');
is(sql("SELECT trade_shipping_state FROM shopping_upload.order_status WHERE order_id = $id3"),
	'needs_reship', 'order_status shows it');
is(taudit($id3), '0', 'no audit row');
is(scalar @{ requests_of($no3) }, 1, 'no request');
is(payment($no3)->{uploads_accepted} + payment($no3)->{uploads_refused}, 1,
	'the stand-in saw nothing more');
my $err = sql_error("SELECT * FROM shopping_upload.upload_trade_shipping($id3)");
like($err, qr/ERROR:\s+55000: .*(sent nothing|not sent).*one re-ship/,
	'upload_trade_shipping() by hand: an error (55000)');
like($err, qr/HINT:.*shopping_upload\.reship\($id3\)/, 'whose hint says to call reship()');
is(tstate($id3, 'state'), 'needs_reship', 'the row still needs_reship after it');
is(scalar @{ requests_of($no3) }, 1, 'and nothing was sent');
sql("SELECT shopping_upload.reship($id3)");
wait_for(settled($id3), 'uploaded true', 'reship(): the change is sent and accepted');
is(tstate($id3, "reship_used || ' ' || finish_count || ' ' || reship_allowed"), 'true 2 false',
	'reship_used, finish_count 2');
is(sql("SELECT reship_used FROM shopping_upload.order_status WHERE order_id = $id3"), 't',
	'order_status shows reship_used');
is(taudit($id3), '0,0', 'two accepted attempts audited');
$p = payment($no3);
is($p->{uploads_accepted}, 2, 'the stand-in accepted the re-ship');
ok($p->{reship_used}, "the stand-in's reship_used");
is($p->{order}{shipping}{finish_shipping_count}, 2, 'finish_shipping_count 2');
is($p->{order}{shipping}{shipping_list}[0]{tracking_no}, "SFB$no3", 'with the new parcel');

# a touch after the re-ship: still not sent
sql("UPDATE shopping_upload.shippings SET updated_at = now() WHERE order_id = $id3");
wait_for(settled($id3), 'uploaded true', 'a touch after the re-ship: uploaded');
is(scalar @{ requests_of($no3) }, 2, 'not sent');

# --- 6. a change after the re-ship: refused here
sql("UPDATE shopping_upload.shipments SET tracking_no = 'SFC$no3' WHERE order_id = $id3");
wait_for("SELECT state || ' ' || last_errcode FROM shopping_upload.trade_state WHERE order_id = $id3",
	'rejected 10060003', 'a change after the re-ship: rejected, 10060003');
is(sql("SELECT errcode || ' ' || sent || ' ' || (http_status IS NULL) FROM shopping_upload.audit
	WHERE order_id = $id3 AND kind = 'trade_shipping' ORDER BY audit_id DESC LIMIT 1"),
	'10060003 false true', 'audited, not sent, http_status NULL');
is(scalar @{ requests_of($no3) }, 2, 'the stand-in got no request');
is(payment($no3)->{uploads_refused}, 0, 'nor refused one');
$err = sql_error("SELECT shopping_upload.reship($id3)");
like($err, qr/ERROR:\s+55000: .*used its one re-ship/, 'reship() again: an error (55000)');

# --- 4. split delivery in three transactions
my ($id4, $no4) = (4, 'TRADE0004');
register($no4);
new_order($id4, $no4);
like(sql_error("SELECT shopping_upload.reship($id4)"), qr/ERROR:\s+55000: /,
	'reship() of an order without shipping information: 55000');
sql("BEGIN;
	INSERT INTO shopping_upload.shippings (order_id, delivery_mode, logistics_type, is_all_delivered)
		VALUES ($id4, 2, 1, false);
	" . parcel_sql($id4, 0, "YT$no4-a") . "
	COMMIT;");
wait_for(settled($id4), 'uploaded true', 'split, first parcel: uploaded');
is(tstate($id4, "finish_count || ' ' || reship_used"), '0 false', 'not complete yet');
like(sql_error("SELECT shopping_upload.reship($id4)"), qr/ERROR:\s+55000: .*not complete and accepted/,
	'reship() of an incomplete shipping: 55000');
sql(parcel_sql($id4, 1, "YT$no4-b", desc => 'Cup*1'));
wait_for(settled($id4), 'uploaded true', 'split, second parcel: uploaded');
is(tstate($id4, 'finish_count'), '0', 'still not complete');
sql("BEGIN; " . parcel_sql($id4, 2, "YT$no4-c", desc => 'Pot*1') . "
	UPDATE shopping_upload.shippings SET is_all_delivered = true WHERE order_id = $id4;
	COMMIT;");
wait_for(settled($id4), 'uploaded true', 'split, third parcel, all delivered: uploaded');
is(tstate($id4, "finish_count || ' ' || reship_used || ' ' || version"), '1 false 3',
	'complete (finish_count 1), no re-ship, three versions');
is(taudit($id4), '0,0,0', 'three accepted attempts');
$p = payment($no4);
is($p->{uploads_accepted} . ' ' . $p->{uploads_refused}, '3 0', 'the stand-in accepted three uploads');
is($p->{order}{shipping}{finish_shipping_count}, 1, 'finish_shipping_count 1');
ok(!$p->{reship_used}, 'no re-ship at the stand-in');
is(join(',', map { $_->{tracking_no} } @{ $p->{order}{shipping}{shipping_list} }),
	"YT$no4-a,YT$no4-b,YT$no4-c", 'it holds the three parcels');
is_deeply([ map { SuStub->decode($_->{body})->{is_all_delivered} ? 1 : 0 } @{ requests_of($no4) } ],
	[ 0, 0, 1 ], 'is_all_delivered false, false, true');

# --- 8. a new delivery_mode / logistics_type mid-split
my ($id5, $no5, $id6, $no6) = (5, 'TRADE0005', 6, 'TRADE0006');
for ([ $id5, $no5 ], [ $id6, $no6 ])
{
	my ($i, $n) = @$_;
	register($n);
	new_order($i, $n);
	sql("BEGIN;
		INSERT INTO shopping_upload.shippings (order_id, delivery_mode, logistics_type, is_all_delivered)
			VALUES ($i, 2, 1, false);
		" . parcel_sql($i, 0, "YT$n-a") . "
		COMMIT;");
}
wait_for("SELECT string_agg(state || ' ' || (uploaded_version = version), ',' ORDER BY order_id)
	FROM shopping_upload.trade_state WHERE order_id IN ($id5, $id6)",
	'uploaded true,uploaded true', 'two split deliveries, first parcel uploaded');
sql("UPDATE shopping_upload.shippings SET delivery_mode = 1 WHERE order_id = $id5");
sql("UPDATE shopping_upload.shippings SET logistics_type = 2 WHERE order_id = $id6");
wait_for("SELECT string_agg(state, ',' ORDER BY order_id) FROM shopping_upload.trade_state
	WHERE order_id IN ($id5, $id6)", 'needs_reship,needs_reship',
	'a new delivery_mode, a new logistics_type after an accepted split upload: needs_reship');
like(tstate($id5, 'last_errmsg'), qr/new delivery_mode or logistics_type/, 'last_errmsg explains');
is(taudit($id5) . ' ' . taudit($id6), '0 0', 'no audit row');
is(scalar(@{ requests_of($no5) }) + scalar(@{ requests_of($no6) }), 2, 'no request');
# the message says reship() allows it: it does
is(sql_error("SELECT shopping_upload.reship($id5)"), '',
	'reship() allows the re-ship of a new delivery_mode');
wait_for(settled($id5), 'uploaded true', 'it is sent and accepted', 10);
is(tstate($id5, "reship_used || ' ' || finish_count"), 'true 2', 'as the one re-ship');
$p = payment($no5);
ok($p->{reship_used}, "the stand-in's reship_used");
is($p->{order}{shipping}{delivery_mode}, 1, 'the stand-in holds the unified delivery');

# --- 1. (continued) found at the third lookup
wait_for(settled($id1), 'uploaded true', 'the payment found at its third lookup: uploaded');
is(taudit($id1), '10060001,10060001,0', 'audit: 10060001 twice, then 0');
my @at = split /\n/, sql("SELECT extract(epoch FROM created_at) FROM shopping_upload.audit
	WHERE order_id = $id1 AND kind = 'trade_shipping' ORDER BY audit_id");
cmp_ok($at[1] - $at[0], '>=', 2.4, 'looked for again about 5 s later (jittered x0.5-1)');
cmp_ok($at[2] - $at[1], '>=', 4.9, 'then about 10 s later');
is(tstate($id1, "finish_count || ' ' || (payment_wait_since IS NULL) || ' ' || last_errcode"),
	'1 true 0', 'complete, its wait over');
$p = payment($no1);
is($p->{uploads_accepted} . ' ' . $p->{lookups} . ' ' . $p->{lookups_refused}, '1 3 2',
	'the stand-in: accepted once, three lookups, two refused');

# --- 10. faults
wait_for("SELECT count(*) FROM shopping_upload.trade_state
	WHERE state IN ('pending', 'uploading', 'retrying', 'waiting_for_payment')", '0',
	'nothing else in flight');
my ($id11, $no11) = (11, 'TRADE0011');
register($no11);
new_order($id11, $no11);
$stub->fault(kind => 'errcode:-1', path => $PATH, count => 1);
$stub->fault(kind => 'http500', path => $PATH, count => 1);
ship_unified($id11, "YT$no11");
wait_for(settled($id11), 'uploaded true', 'answered -1 then HTTP 500: retried until accepted');
like(sql("SELECT string_agg(errcode || '/' || coalesce(http_status::text, '-'), ',' ORDER BY audit_id)
	FROM shopping_upload.audit WHERE order_id = $id11 AND kind = 'trade_shipping'"),
	qr{^-1/200,-?\d+/500,0/200$}, 'three attempts audited: -1, HTTP 500, accepted');
is(tstate($id11, "finish_count || ' ' || attempts"), '1 3', 'complete, after three attempts');
$p = payment($no11);
is($p->{uploads_accepted} . ' ' . $p->{lookups}, '1 1', 'the stand-in: accepted once (faulted requests are no lookups)');
$stub->clear_faults;

# kill -9 of the worker with a trade upload in flight
my ($id12, $no12) = (12, 'TRADE0012');
register($no12);
new_order($id12, $no12);
$stub->fault(kind => 'delay', delay_ms => 4000, path => $PATH, count => 1);
ship_unified($id12, "YT$no12");
# (the stand-in records a request when it answers it: after the delay)
wait_for("SELECT state FROM shopping_upload.trade_state WHERE order_id = $id12", 'uploading',
	'the upload is in flight (the stand-in holds it 4 s)', 5);
usleep(500_000);
my $old_pid = worker_pid();
my $killed_at = time();
kill 'KILL', $old_pid;
wait_for("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'shopping_upload worker' AND pid <> $old_pid",
	'1', 'the worker is back after the crash restart');
wait_for(settled($id12), 'uploaded true', 'the row is uploaded after the restart, not stuck');
like(tstate($id12, 'last_errcode'), qr/^(0|10060023)$/, 'accepted (0, or 10060023 for the same shipping)');
is(tstate($id12, 'finish_count'), '1', 'complete');
my $answered = 0;
for (1 .. 200)
{
	$p = payment($no12);
	if ($p->{uploads_accepted} + $p->{uploads_refused} >= 2) { $answered = 1; last; }
	usleep(50_000);
}
ok($answered, 'the stand-in answered both requests');
my $sent = requests_of($no12);
is(scalar @$sent, 2, 'sent exactly once more');
my ($first) = sort { $a->{time} <=> $b->{time} } @$sent;
ok($first && $first->{time} < $killed_at && $first->{done} > $killed_at,
	'the first request was in flight when the worker was killed');
is($p->{uploads_accepted} . ' ' . $p->{uploads_refused}, '1 1',
	'accepted once at the stand-in, the other answered 10060023');
is($p->{order}{shipping}{finish_shipping_count}, 1, 'finish_shipping_count 1: no re-ship spent');
is(sql("SELECT count(*) FROM shopping_upload.audit WHERE order_id = $id12 AND kind = 'trade_shipping'
	AND errcode IN (0, 10060023)"), '1', 'the attempt after the restart is audited');
ok(!$p->{reship_used}, 'the re-send did not use the re-ship');

$stub->clear_faults;
diag(sprintf('wall time %.1f s', time() - $t0));
done_testing();
