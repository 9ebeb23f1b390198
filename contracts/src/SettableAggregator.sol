// SPDX-License-Identifier: MIT
pragma solidity 0.8.19;

/// @title SettableAggregator
/// @notice Price-feed test double with the Chainlink aggregator read interface (v2 + v3)
///         whose answer the owner can set. Emits Chainlink's AnswerUpdated so indexers can
///         detect price changes from logs, exactly as on a real feed.
contract SettableAggregator {
    event AnswerUpdated(int256 indexed current, uint256 indexed roundId, uint256 updatedAt);
    event NewRound(uint256 indexed roundId, address indexed startedBy, uint256 startedAt);

    uint8 public immutable decimals;
    string public description;
    address public owner;

    int256 private _answer;
    uint80 private _roundId;
    uint256 private _updatedAt;

    constructor(uint8 decimals_, string memory description_, int256 initialAnswer) {
        decimals = decimals_;
        description = description_;
        owner = msg.sender;
        _record(initialAnswer, block.timestamp);
    }

    modifier onlyOwner() {
        require(msg.sender == owner, "not owner");
        _;
    }

    function setAnswer(int256 answer) external onlyOwner {
        _record(answer, block.timestamp);
    }

    /// @notice Sets an answer with an explicit update time, to model stale feeds.
    function setAnswerWithTimestamp(int256 answer, uint256 updatedAt) external onlyOwner {
        _record(answer, updatedAt);
    }

    function transferOwnership(address newOwner) external onlyOwner {
        owner = newOwner;
    }

    function version() external pure returns (uint256) {
        return 4;
    }

    function latestAnswer() external view returns (int256) {
        return _answer;
    }

    function latestTimestamp() external view returns (uint256) {
        return _updatedAt;
    }

    function latestRound() external view returns (uint256) {
        return _roundId;
    }

    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        return (_roundId, _answer, _updatedAt, _updatedAt, _roundId);
    }

    function _record(int256 answer, uint256 updatedAt) private {
        _roundId += 1;
        _answer = answer;
        _updatedAt = updatedAt;
        emit NewRound(_roundId, msg.sender, updatedAt);
        emit AnswerUpdated(answer, _roundId, updatedAt);
    }
}
